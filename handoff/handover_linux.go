package handoff

import (
	"fmt"
	"strings"
)

// parseBound parses envBound: positions (fd - 3) in increasing order,
// separated by commas; empty means none.
func parseBound(v string) ([]int, error) {
	if v == "" {
		return nil, nil
	}
	var positions []int
	for p := range strings.SplitSeq(v, ",") {
		i, err := decimal(p)
		if err != nil || len(positions) > 0 && i <= positions[len(positions)-1] {
			return nil, fmt.Errorf("%s=%q: %w", envBound, v, ErrBadEnvironment)
		}
		positions = append(positions, i)
	}
	return positions, nil
}

// successorMessage classifies what a successor wrote on the hand-over
// channel instead of, or as, READY: kind is msgReady, msgVersion (arg: the
// version it speaks) or "" for anything else.
func successorMessage(b []byte) (kind, arg string) {
	switch m := string(b); {
	case m == msgReady:
		return msgReady, ""
	case m == msgReady+" "+readyProbation:
		return msgReady, readyProbation
	case strings.HasPrefix(m, msgVersion+" "):
		v := strings.TrimPrefix(m, msgVersion+" ")
		if _, err := decimal(v); err == nil {
			return msgVersion, v
		}
	}
	return "", ""
}
