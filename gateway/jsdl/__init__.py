"""JSDL 1.0 (GFD.56) and its extensions (POSIX, HPC Profile, SPMD, Parameter Sweep, ARC):
a JobDefinition read into the neutral JobSpec. Used by every front end that takes JSDL."""
