"""OGSA-BES 1.0 front end: SOAP 1.1 document/literal, JSDL 1.0 parsing, BES faults."""
