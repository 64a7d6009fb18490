"""Access periods and renewal: time-limited enrollments, renewal orders, reminders."""
