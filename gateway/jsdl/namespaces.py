"""Namespaces of JSDL 1.0 (GFD.56) and its extensions, by their standard names."""

from __future__ import annotations

JSDL = "http://schemas.ggf.org/jsdl/2005/11/jsdl"
POSIX = "http://schemas.ggf.org/jsdl/2005/11/jsdl-posix"
HPCPA = "http://schemas.ggf.org/jsdl/2006/07/jsdl-hpcpa"
# GFD.111 was published under ggf.org; UNICORE, ARC and GenesisII write the ogf.org
# spelling. Both name the same element set, so both are read.
HPCPA_OGF = "http://schemas.ogf.org/jsdl/2006/07/jsdl-hpcpa"
SPMD = "http://schemas.ogf.org/jsdl/2007/02/jsdl-spmd"
SWEEP = "http://schemas.ogf.org/jsdl/2009/03/sweep"
SWEEP_FUNC = "http://schemas.ogf.org/jsdl/2009/03/sweep/functions"
UNICORE = "http://www.unicore.eu/unicore/jsdl-extensions"

JSDL_NAMESPACES = frozenset({JSDL, POSIX, HPCPA, HPCPA_OGF, SPMD, SWEEP, SWEEP_FUNC})
