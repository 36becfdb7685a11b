"""Parity on an emulated aarch64 CPU (qemu user mode), for Jetson Orin / Raspberry Pi 5 class targets."""
