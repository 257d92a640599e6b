# Writes the tree at argv[1] as a ZIP to stdout, which the test makes a pipe
# (so zipfile writes data descriptors), as a Python service streaming a
# download would: modes, DOS times in the local zone, symlinks stored.
import os, sys, time, zipfile

root = sys.argv[1]
with zipfile.ZipFile(sys.stdout.buffer, "w", zipfile.ZIP_DEFLATED) as z:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            arc = os.path.relpath(path, root)
            if os.path.islink(path):
                stamp = time.localtime(os.lstat(path).st_mtime)[:6]
                info = zipfile.ZipInfo(arc, stamp)
                info.external_attr = 0o120777 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, os.readlink(path))
            else:
                z.write(path, arc)
