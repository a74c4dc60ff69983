"""Configuration: its types (`models`), reading it (`loader`) and the one in force (`live`)."""
