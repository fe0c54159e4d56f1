"""Examples of hosts embedding callrec. ``examples.practice_host`` is the demo practice-management system."""
