"""Apache TVM for the arm-cpu target: the IR compiled ahead of time into a shared library for
the board's CPU (compile), MetaSchedule tuning with a cache (tuning), and the device-side
runtime and runner made once at install time (runtime)."""
