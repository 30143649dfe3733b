"""The engine: validated settings and the one service (`Engine`) that every front end calls."""
