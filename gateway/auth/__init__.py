"""Who is calling: an ordered chain of authenticators that yields one principal."""
