// Command promrules checks Prometheus rule files the way `promtool check rules` does (the
// rule-file shape, every PromQL expression, every label and annotation template, through
// Prometheus' own model/rulefmt and promql/parser) without building promtool, and prints, as
// JSON, how many groups and rules each file has and which metric names the expressions select.
//
// Usage: promrules FILE...   (exit status 1 and the errors on stderr when a file is invalid)
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type report struct {
	File    string   `json:"file"`
	Groups  int      `json:"groups"`
	Rules   int      `json:"rules"`
	Alerts  []string `json:"alerts"`
	Metrics []string `json:"metrics"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promrules FILE...")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	failed := false
	var out []report
	for _, file := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(file, false, model.LegacyValidation, p, logger)
		if len(errs) > 0 {
			failed = true
			for _, err := range errs {
				fmt.Fprintln(os.Stderr, err)
			}
			continue
		}
		r := report{File: file, Groups: len(groups.Groups), Alerts: []string{}}
		names := map[string]bool{}
		for _, g := range groups.Groups {
			for _, rule := range g.Rules {
				r.Rules++
				if rule.Alert != "" {
					r.Alerts = append(r.Alerts, rule.Alert)
				}
				expr, err := p.ParseExpr(rule.Expr)
				if err != nil { // rulefmt has checked it already
					failed = true
					fmt.Fprintf(os.Stderr, "%s: %s: %v\n", file, rule.Expr, err)
					continue
				}
				parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
					if vs, ok := node.(*parser.VectorSelector); ok && vs.Name != "" {
						names[vs.Name] = true
					}
					return nil
				})
			}
		}
		for name := range names {
			r.Metrics = append(r.Metrics, name)
		}
		sort.Strings(r.Metrics)
		out = append(out, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}
