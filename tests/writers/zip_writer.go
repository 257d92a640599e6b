// Writes the tree at os.Args[1] into the ZIP os.Args[2] with archive/zip,
// as Go tools do: FileInfoHeader (mode, UTC time), data descriptors, and
// Deflate unless os.Args[3] is "store" (FileInfoHeader's default).
package main

import (
	"archive/zip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	root, out := os.Args[1], os.Args[2]
	f, err := os.Create(out)
	check(err)
	w := zip.NewWriter(f)
	check(filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		check(err)
		if path == root {
			return nil
		}
		info, err := os.Lstat(path)
		check(err)
		hdr, err := zip.FileInfoHeader(info)
		check(err)
		rel, err := filepath.Rel(root, path)
		check(err)
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		} else if len(os.Args) < 4 || os.Args[3] != "store" {
			hdr.Method = zip.Deflate
		}
		dst, err := w.CreateHeader(hdr)
		check(err)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			check(err)
			_, err = io.WriteString(dst, target)
			check(err)
		case info.Mode().IsRegular():
			src, err := os.Open(path)
			check(err)
			_, err = io.Copy(dst, src)
			check(err)
			check(src.Close())
		}
		return nil
	}))
	check(w.Close())
	check(f.Close())
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
