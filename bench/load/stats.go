package load

import (
	"slices"
	"time"
)

// Counts is the number of requests per class.
type Counts [numClasses]int

// Count tallies records by class.
func Count(recs []Record) Counts {
	var c Counts
	for _, r := range recs {
		c[r.Class]++
	}
	return c
}

// Total is the number of requests.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Failed is the number of requests not OK.
func (c Counts) Failed() int { return c.Total() - c[OK] }

// Failures maps each failure class with a non-zero count to its count.
func (c Counts) Failures() map[string]int {
	m := map[string]int{}
	for _, cl := range Classes() {
		if c[cl] > 0 {
			m[cl.String()] = c[cl]
		}
	}
	return m
}

// Quantiles holds a few order statistics of a sample.
type Quantiles struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// Summarize sorts ds in place and returns its quantiles (nearest rank).
func Summarize(ds []time.Duration) Quantiles {
	q := Quantiles{N: len(ds)}
	if len(ds) == 0 {
		return q
	}
	slices.Sort(ds)
	q.P50 = Rank(ds, 0.50)
	q.P90 = Rank(ds, 0.90)
	q.P99 = Rank(ds, 0.99)
	q.Max = ds[len(ds)-1]
	return q
}

// Rank returns the p-quantile (0 < p <= 1) of the sorted sample ds by the
// nearest-rank method; zero for an empty sample.
func Rank(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(p*float64(len(ds))+0.999999999) - 1
	i = max(0, min(i, len(ds)-1))
	return ds[i]
}
