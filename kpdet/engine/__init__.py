"""Training and evaluation. Nothing in kpdet imports the engine; tools call it."""
