"""What a person watching a command sees while it works: progress of its long steps (progress.py) and how it
is drawn (reporters.py)."""
