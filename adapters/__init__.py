"""Connectors to a site's identity infrastructure: LDAP, Kerberos, local account mapping."""
