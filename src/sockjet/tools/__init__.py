"""Tools built on sockjet: the command line, the browser-eye doctor, the chat demo."""
