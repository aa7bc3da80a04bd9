"""Images for the JS SDK's tests, from the integration suite's helpers (a busybox image,
loopback only):
  image_fixture.py save PATH NAME   writes a `docker save` tarball of an image tagged NAME
  image_fixture.py registry REPO TAG  serves it from a fake registry on 127.0.0.1, prints
                                      the reference to pull, and stops when stdin closes
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "integration"))

import small_images  # noqa: E402


def main():
    if not small_images.available():
        print("skip: /bin/busybox is missing", file=sys.stderr)
        return 3
    if sys.argv[1] == "save":
        small_images.save_tarball(sys.argv[2], sys.argv[3])
        return 0
    from registry_fixture import FakeRegistry
    fake = FakeRegistry()
    try:
        print(small_images.serve(fake, sys.argv[2], sys.argv[3], big=3 << 20), flush=True)
        sys.stdin.read()
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
