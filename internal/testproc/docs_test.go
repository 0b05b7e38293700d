package testproc

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryPackageHasDoc walks the whole repository, nested modules
// included, and fails for each package without a package doc comment.
func TestEveryPackageHasDoc(t *testing.T) {
	root := moduleRoot(t)
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		files, err := filepath.Glob(filepath.Join(path, "*.go"))
		if err != nil {
			return err
		}
		documented := map[string]bool{} // package name -> has a doc comment
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				return err
			}
			pkg := f.Name.Name
			doc := ""
			if f.Doc != nil {
				doc = f.Doc.Text()
			}
			documented[pkg] = documented[pkg] || strings.HasPrefix(doc, "Package "+pkg+" ") ||
				pkg == "main" && strings.TrimSpace(doc) != ""
		}
		for pkg, ok := range documented {
			checked++
			if !ok {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("package %s in %s has no package doc comment (\"// Package %s ...\" in doc.go)", pkg, rel, pkg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no package found under " + root)
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "tools")); err == nil {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (go.mod beside tools/) not found")
		}
		dir = parent
	}
}

// mdRef is a Markdown file named in a comment: "docs/systemd-notes.md".
var mdRef = regexp.MustCompile(`[A-Za-z0-9_][A-Za-z0-9_./-]*\.md\b`)

// TestCommentsCiteRepoFiles fails for each comment of a Go file that
// names a Markdown file the repository does not have (relative to its
// root or to the Go file): users read the comments with go doc, and a
// cited file must be there for them.
func TestCommentsCiteRepoFiles(t *testing.T) {
	root := moduleRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, cg := range f.Comments {
			for _, ref := range mdRef.FindAllString(cg.Text(), -1) {
				_, errRoot := os.Stat(filepath.Join(root, ref))
				_, errHere := os.Stat(filepath.Join(filepath.Dir(path), ref))
				if errRoot != nil && errHere != nil {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s: a comment cites %s, which is not in the repository", rel, ref)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
