// Package layering holds no code: its test holds the whole module to the
// import rules of STYLE.md, so that a package keeps one job.
package layering
