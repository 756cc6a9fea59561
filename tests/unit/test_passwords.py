from gateway.auth.passwords import hash_password, verify_password


def test_hash_verifies_only_the_right_password():
    stored = hash_password("s3cret-words")
    assert stored.startswith("$scrypt$ln=15,r=8,p=1$")
    assert verify_password("s3cret-words", stored)
    assert not verify_password("s3cret-wordz", stored)


def test_salted_so_equal_passwords_differ():
    assert hash_password("same-password") != hash_password("same-password")


def test_garbage_hashes_are_refused_not_crashing():
    for stored in ("", "plain", "$md5$x$y$z", "$scrypt$ln=x$aa$bb", "$scrypt$ln=4,r=8$aa$bb"):
        assert not verify_password("anything", stored)


def test_parameters_are_read_from_the_hash():
    # a hash made with weaker parameters still verifies (so they can be raised later)
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw", salt=salt, n=1 << 10, r=8, p=1, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    assert verify_password("pw", f"$scrypt$ln=10,r=8,p=1${b64(salt)}${b64(digest)}")
