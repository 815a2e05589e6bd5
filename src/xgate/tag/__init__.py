"""The browser side: the first-party tag, the twclid cookie, consent, and backend middleware."""
