"""The reference documents' studies as runnable recipes (library functions the CLI calls)."""
