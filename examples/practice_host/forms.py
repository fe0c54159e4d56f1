"""The demo PMS's forms (Flask-WTF: each carries a CSRF token)."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(message="Enter your username."), Length(max=64)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"})
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""


class CloseComplaintForm(FlaskForm):
    """Only the CSRF token: closing a complaint is a POST."""
