"""Code that runs on the device: standalone modules needing only numpy, Pillow and one runtime (no torch,
no package-relative imports). The host imports them as ``uninext_deploy.device.*``; bundles run them as plain
files side by side (``run.py`` imports its siblings)."""
