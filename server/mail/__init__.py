"""Account mail: ``Mailer`` (SMTP or ``.eml`` files) and the messages (``AccountMails``).

``build_mailer(settings)`` picks the transport; ``AccountMails.from_settings(settings)``
builds verify-e-mail, reset-password, password-changed and account-deleted mails.
"""
