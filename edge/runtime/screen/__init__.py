"""The kiosk screen: one page, served by the daemon, that shows the words and takes feedback."""
