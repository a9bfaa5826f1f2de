"""The command line: parse, one library call, render, exit code. Only this package prints."""
