"""Sign in (at /; app.py also shows it at the address of every private page)."""

from ui.auth import sign_in_screen

sign_in_screen()
