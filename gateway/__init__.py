"""The Veilig Thuis messaging gateway: one door behind every channel."""
