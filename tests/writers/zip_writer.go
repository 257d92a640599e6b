// Writes the tree at os.Args[1] into the ZIP os.Args[2] with archive/zip,
// as Go tools do: FileInfoHeader (mode, UTC time), data descriptors, and
// Deflate unless os.Args[3] is "store" (FileInfoHeader's default). With
// "module", as Go module zips are made: regular files only, through
// Writer.Create (no mode, no time).
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
		if mode() == "module" {
			if !info.Mode().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(root, path)
			check(err)
			dst, err := w.Create(filepath.ToSlash(rel))
			check(err)
			src, err := os.Open(path)
			check(err)
			_, err = io.Copy(dst, src)
			check(err)
			return src.Close()
		}
		hdr, err := zip.FileInfoHeader(info)
		check(err)
		rel, err := filepath.Rel(root, path)
		check(err)
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		} else if mode() != "store" {
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

// mode is the optional third argument.
func mode() string {
	if len(os.Args) < 4 {
		return ""
	}
	return os.Args[3]
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
