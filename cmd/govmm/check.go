package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/govmm/govmm/sandbox/audit"
	"github.com/govmm/govmm/vmm"
)

// Exit codes of `govmm check`: 0 when no check FAILs (WARNs are allowed,
// since most hosts have some and still run VMs safely enough), 1 when any
// check FAILs, so scripts can gate deployment on it, 2 for bad flags.
const (
	checkOK     = 0
	checkFailed = 1
)

// checkHost is the host `govmm check` audits; tests point it at a fake.
var checkHost = audit.Host{}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("govmm check", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // one-line errors, as for govmm run
	asJSON := fs.Bool("json", false, "print the results as a JSON array")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "usage: govmm check [--json]   (exit 0: no FAIL, 1: some FAIL, 2: bad flags)")
			fs.PrintDefaults()
			return 0
		}
		return fail(stderr, vmm.CodeUsage, err)
	}
	if fs.NArg() > 0 {
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	results := audit.Run(checkHost)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return fail(stderr, vmm.CodeError, err)
		}
	} else {
		writeCheckTable(stdout, results)
	}
	if audit.AnyFail(results) {
		return checkFailed
	}
	return checkOK
}

// writeCheckTable prints one line per check: STATUS ID REFERENCE, then
// "title — detail; fix: ...". The first three columns are aligned so a
// reader can scan the verdicts; the free text is last so it may be long.
func writeCheckTable(w io.Writer, rs []audit.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s — %s; fix: %s\n", r.Status, r.ID, r.Reference, r.Title, r.Detail, r.Fix)
	}
	tw.Flush()
}
