// Package hadooppb holds Go types for the subset of Hadoop's protobuf
// messages that the hdfstest server speaks. It is generated from
// hadoop.proto; see that file for where the definitions come from and why
// the protobuf package name differs from Hadoop's.
package hadooppb

//go:generate ./gen.sh
