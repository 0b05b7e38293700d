package units

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Write writes files into dir, all or nothing: each goes to a temporary
// file in dir, and only when every one is written and synced are they
// renamed over their final names. When a rename fails, the files already
// renamed are put back as they were (the previous version restored, or
// removed if there was none).
func Write(dir string, files []File) (err error) {
	type entry struct{ final, temp, saved string }
	entries := make([]entry, 0, len(files))
	defer func() {
		for _, e := range entries {
			// Gone after a rename or a rollback; otherwise best effort.
			_ = os.Remove(e.temp)
			if e.saved != "" {
				_ = os.Remove(e.saved)
			}
		}
		if err != nil {
			err = fmt.Errorf("write units: %w", err)
		}
	}()

	for _, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name[0] == '.' {
			return fmt.Errorf("bad file name %q", f.Name)
		}
		e := entry{final: filepath.Join(dir, f.Name)}
		e.temp, err = writeTemp(dir, f)
		if e.temp != "" {
			entries = append(entries, e)
		}
		if err != nil {
			return err
		}
	}
	// Keep a hard link to each file about to be replaced, for a rollback.
	for i := range entries {
		e := &entries[i]
		fi, err := os.Lstat(e.final)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s exists and is not a regular file", e.final)
		}
		e.saved = e.temp + ".old"
		if err := os.Link(e.final, e.saved); err != nil {
			e.saved = ""
			return err
		}
	}
	for i, e := range entries {
		if err := os.Rename(e.temp, e.final); err != nil {
			for _, done := range entries[:i] {
				var uerr error
				if done.saved != "" {
					uerr = os.Rename(done.saved, done.final)
				} else {
					uerr = os.Remove(done.final)
				}
				if uerr != nil {
					err = errors.Join(err, fmt.Errorf("roll back: %w", uerr))
				}
			}
			return err
		}
	}
	return syncDir(dir)
}

func writeTemp(dir string, f File) (string, error) {
	tf, err := os.CreateTemp(dir, "."+f.Name+".tmp*")
	if err != nil {
		return "", err
	}
	_, err = tf.Write(f.Bytes())
	if err == nil {
		err = tf.Chmod(0o644)
	}
	if err == nil {
		err = tf.Sync()
	}
	return tf.Name(), errors.Join(err, tf.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
