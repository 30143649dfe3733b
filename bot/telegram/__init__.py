"""The Telegram front end: `app.serve()` runs the bot; handlers stay thin over `engine.service.Engine`."""
