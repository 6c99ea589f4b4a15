"""The VXC interfaces on the Linux side: a pure plan from the configuration (`plan`), and its application (`apply`)."""
