# Writes the tree at argv[1] as a ZIP to stdout, which the test makes a pipe
# (so zipfile writes data descriptors), as a Python service streaming a
# download would: modes, DOS times in the local zone, symlinks stored.
# With "stored" as argv[2], entries are stored (zipfile's default).
import os, sys, time, zipfile

root = sys.argv[1]
method = zipfile.ZIP_STORED if sys.argv[2:] == ["stored"] else zipfile.ZIP_DEFLATED
with zipfile.ZipFile(sys.stdout.buffer, "w", method) as z:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            arc = os.path.relpath(path, root)
            if os.path.islink(path):
                stamp = time.localtime(os.lstat(path).st_mtime)[:6]
                info = zipfile.ZipInfo(arc, stamp)
                info.external_attr = 0o120777 << 16
                info.compress_type = method
                z.writestr(info, os.readlink(path))
            else:
                z.write(path, arc)
