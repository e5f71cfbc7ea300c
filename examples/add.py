"""The script the script-runner example executes: prints a + b."""

import sys

print(int(sys.argv[1]) + int(sys.argv[2]))
