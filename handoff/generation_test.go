package handoff

import (
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
)

// The table in doc.go (Lifecycle) and the transitions the code allows are
// the same, phase by phase, with the same main and accepting columns.
func TestLifecycleTable(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]phase{}
	for p := range phaseNames {
		byName[phase(p).String()] = phase(p)
	}
	doc := map[phase][]phase{}
	var cur phase
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimPrefix(line, "//\t")
		if strings.HasPrefix(line, "phase ") && strings.Contains(line, "goes to") {
			inTable = true
			continue
		}
		if !inTable {
			continue
		}
		if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "//") {
			// A row naming its phase: "name  main  accepts  next  when".
			cols := splitCols(line)
			p, ok := byName[cols[0]]
			if !ok || len(cols) < 4 {
				t.Fatalf("doc.go table row %q: unknown phase or short row", line)
			}
			cur = p
			if want := yesNo(p.main()); cols[1] != want {
				t.Errorf("%s: doc says main %q, code %q", p, cols[1], want)
			}
			if want := yesNo(p.accepting()); cols[2] != want {
				t.Errorf("%s: doc says accepts %q, code %q", p, cols[2], want)
			}
			doc[p] = append(doc[p], next(t, byName, cols[3])...)
			continue
		}
		if strings.HasPrefix(line, "//") {
			break // the table ended
		}
		cols := splitCols(strings.TrimSpace(line))
		doc[cur] = append(doc[cur], next(t, byName, cols[0])...)
	}
	if len(doc) != len(phaseNames) {
		t.Fatalf("doc.go table has %d phases, the code %d", len(doc), len(phaseNames))
	}
	for p, want := range transitions {
		got := doc[p]
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("%s: doc.go goes to %v, the code to %v", p, got, want)
		}
	}
}

// splitCols splits a table row on runs of two or more spaces.
func splitCols(line string) []string {
	var cols []string
	for _, f := range strings.Split(line, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			cols = append(cols, f)
		}
	}
	return cols
}

func next(t *testing.T, byName map[string]phase, name string) []phase {
	t.Helper()
	if name == "-" {
		return nil
	}
	p, ok := byName[name]
	if !ok {
		t.Fatalf("doc.go table: unknown phase %q", name)
	}
	return []phase{p}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func sorted(ps []phase) []phase {
	out := slices.Clone(ps)
	slices.Sort(out)
	return out
}

// A move the lifecycle does not have is refused with an error (errors.Is
// errTransition), counted, and leaves the phase.
func TestEnterRefuses(t *testing.T) {
	u := &Upgrader{log: slog.New(slog.DiscardHandler), phase: phaseServing}
	if err := u.enterLocked(phaseProbation); !errors.Is(err, errTransition) || u.phase != phaseServing {
		t.Fatalf("serving -> probation: %v, phase %s", err, u.phase)
	}
	if err := u.enterLocked(phaseUpgrading); err != nil || u.phase != phaseUpgrading {
		t.Fatalf("serving -> upgrading: %v, phase %s", err, u.phase)
	}
	u.phase = phaseHandedOver
	for p := range phaseNames {
		if err := u.enterLocked(phase(p)); err == nil {
			t.Errorf("handed over -> %s taken", phase(p))
		}
	}
	if want := 1 + len(phaseNames); u.refused != want {
		t.Errorf("refused %d, want %d", u.refused, want)
	}
}
