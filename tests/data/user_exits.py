"""A script that exits when imported, as argparse scripts do (tests only)."""
import sys

sys.exit(3)
