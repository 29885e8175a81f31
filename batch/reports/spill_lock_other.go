//go:build !unix

package reports

import "os"

// Without flock there is no telling a dead run's spill directory from a
// running one's: nothing is locked and nothing removed.
func lockSpillDir(string) (*os.File, error) { return nil, nil }

func removeStaleSpillDirs(string) ([]string, error) { return nil, nil }
