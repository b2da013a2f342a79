"""ES modules shared by the pages (one api(), one socket client, one sign-in); no build step."""
