# build1g.py - python3 building a 1 GiB structure of distinct 4 KiB
# objects, then a digest over all of them (tests/func/25 and 27 compare
# the output with a native run's).
import hashlib
blocks = [(i.to_bytes(4, "little") * 1024) for i in range(262144)]
h = hashlib.sha256()
for b in blocks:
    h.update(b)
print(len(blocks), sum(len(b) for b in blocks), h.hexdigest())
