"""A real window on the device's screen (Tk), fed the latest frame; full-screen-friendly.

Tk runs in its own thread (it owns its main loop). The asyncio side only swaps in the latest
RGB frame (one slot: a slow screen drops frames, it never queues them); the Tk thread polls
the slot ~30 times a second. Captions show below the picture in large type (kiosk distance).
"""

from __future__ import annotations

import gc
import threading

from av import VideoFrame

from edge.webrtc.display import RecordingDisplay


class WindowDisplay(RecordingDisplay):
    def __init__(self, title: str = "Baton", width: int = 640, height: int = 480):
        super().__init__()
        import tkinter

        del tkinter  # imported only to fail early, in the caller's thread, if Tk is missing

        self._title, self._w, self._h = title, width, height
        self._slot: tuple[int, int, bytes] | None = None
        self._caption = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.shown = 0  # frames put on screen (fewer than received when the screen is slow)
        self._thread = threading.Thread(target=self._run, name="display-window", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise RuntimeError(f"cannot open display window: {self._error}")

    def show_video(self, frame: VideoFrame) -> None:
        super().show_video(frame)
        rgb = frame.reformat(width=self._w, height=self._h, format="rgb24")
        data = bytes(rgb.planes[0])
        stride = rgb.planes[0].line_size
        if stride != self._w * 3:  # drop row padding
            data = b"".join(data[r * stride:r * stride + self._w * 3] for r in range(self._h))
        with self._lock:
            self._slot = (self._w, self._h, data)

    def show_caption(self, text: str, lang: str | None, speaker: str) -> None:
        super().show_caption(text, lang, speaker)
        with self._lock:
            self._caption = text

    def _run(self) -> None:
        # All Tk objects live in ``ui`` and die in this thread: freed in another thread, Tcl
        # aborts the process ("Tcl_AsyncDelete: async handler deleted by the wrong thread").
        ui: dict = {}
        try:
            import tkinter as tk

            ui["root"] = root = tk.Tk()
            root.title(self._title)
            root.configure(background="black")
            ui["picture"] = tk.Label(root, background="black")
            ui["picture"].pack()
            ui["text"] = tk.Label(root, font=("DejaVu Sans", 28), fg="white", bg="black",
                                  wraplength=self._w)
            ui["text"].pack(fill="x")
        except BaseException as e:
            self._error = e
            ui.clear()
            self._ready.set()
            return
        self._ready.set()

        def poll() -> None:
            if self._stop.is_set():
                ui["root"].destroy()
                return
            with self._lock:
                slot, self._slot, caption = self._slot, None, self._caption
            if slot is not None:
                w, h, data = slot
                header = f"P6 {w} {h} 255 ".encode()
                ui["img"] = tk.PhotoImage(data=header + data, format="PPM")
                ui["picture"].configure(image=ui["img"])
                self.shown += 1
            if ui["text"].cget("text") != caption:
                ui["text"].configure(text=caption)
            ui["root"].after(33, poll)

        root.after(33, poll)
        del root
        ui["root"].mainloop()
        ui.clear()
        gc.collect()

    def close(self) -> None:
        super().close()
        self._stop.set()
        self._thread.join(2)
