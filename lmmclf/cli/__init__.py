"""The command line: one small module per command, each parsing flags and calling one library function."""
