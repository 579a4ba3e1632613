package invariants

import (
	"strconv"
	"strings"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

// KMS key states that mean the key cannot be used.
var kmsUnusable = map[string]bool{"Disabled": true, "PendingDeletion": true, "PendingImport": true, "Unavailable": true, "Deleted": true}

// checkBackupsOutsideReencryption: I5. No backup is recorded (its createdAt) inside a
// re-encryption of its app (from its begin, plus AuditSlack, to its commit or abort), and
// every skip names its reason.
func checkBackupsOutsideReencryption(c *checker, a AppState) {
	id := a.App.ID
	type span struct {
		gen        string
		begin, end time.Time
	}
	var spans []span
	for _, e := range a.Audit {
		switch e.Action {
		case lineage.ActionReencryptBegun:
			spans = append(spans, span{gen: e.Detail["generation"], begin: e.Time})
		case lineage.ActionReencryptCommitted, lineage.ActionReencryptAborted:
			for i := range spans {
				if spans[i].gen == e.Detail["generation"] && spans[i].end.IsZero() {
					spans[i].end = e.Time
				}
			}
		case lineage.ActionBackupSkipped:
			c.check(strings.TrimSpace(e.Detail["reason"]) != "", I5, id, "backup skip at %s recorded without its reason", e.Time.Format(time.RFC3339Nano))
		}
	}
	for _, sk := range a.Skips {
		c.check(strings.TrimSpace(sk.Reason) != "", I5, id, "skip at %s has no reason", sk.Time.Format(time.RFC3339Nano))
	}
	for _, b := range a.Backups {
		for _, sp := range spans {
			inside := b.CreatedAt.After(sp.begin.Add(AuditSlack)) && (sp.end.IsZero() || b.CreatedAt.Before(sp.end))
			c.check(!inside, I5, id, "backup %s recorded at %s while the app re-encrypted to generation %s (begun %s, ended %s)",
				b.ID, b.CreatedAt.Format(time.RFC3339Nano), sp.gen, sp.begin.Format(time.RFC3339Nano), fmtEnd(sp.end))
		}
	}
}

func fmtEnd(t time.Time) string {
	if t.IsZero() {
		return "not yet"
	}
	return t.Format(time.RFC3339Nano)
}

// checkTenancyAtRest: I10 at rest. Every object of an app is sealed under an encryption
// context that names that app and its org.
func checkTenancyAtRest(c *checker, a AppState) {
	for _, o := range a.Objects {
		if o.Org == "" && o.App == "" {
			continue // the header was not read for its context
		}
		c.check(o.App == a.App.ID && o.Org == a.App.OrgID, I10, a.App.ID,
			"object %s sealed for org %q app %q, it belongs to org %q app %q", o.Key, o.Org, o.App, a.App.OrgID, a.App.ID)
	}
}

// checkKeys: I8. Once every key event is applied, a key keyline records as revoked is
// unusable in KMS, and a key usable in KMS is not recorded as revoked.
func checkKeys(c *checker, keys []KeyState) {
	for _, k := range keys {
		if k.KMS == "" {
			continue
		}
		switch {
		case k.KMS == "Enabled":
			c.check(!k.Revoked, I8, "", "key %s is Enabled in KMS but recorded as revoked", k.ARN)
		case kmsUnusable[k.KMS]:
			c.check(k.Revoked, I8, "", "key %s is %s in KMS but recorded as usable", k.ARN, k.KMS)
		}
	}
}

// deactivations are the spans during which an app was deactivated for certain, derived the
// way the product derives it: the app is deactivated while the key of its active generation
// is revoked, and a key's state changes only with the entries of the key's own trail
// (key.revoked, key.reactivated: one transaction each with the key item), which the app's
// trail shows for every key its generations used. A span runs from a revocation of the
// app's active key (plus AuditSlack), or from an observation that saw the app DEACTIVATED
// (its answer), to the next reactivation of that same key (an entry may be timed up to
// AuditSlack before its change lands, so a reactivation that close counts as before).
//
// The audit trail must have been read after every operation judged against it ended (the
// soak reads the history before it collects): a reactivation not yet read would leave the
// span open and make a legitimate operation look like a breach.
func deactivations(a AppState, ops []Op) [][2]time.Time {
	// span is [start, the first reactivation of key after from), or nothing when that
	// reactivation comes before start.
	var out [][2]time.Time
	span := func(key string, from, start time.Time) {
		end := time.Time{}
		for _, e := range a.Audit {
			if e.Action == lineage.ActionKeyReactivated && sameKey(entryKey(e), key) && e.Time.After(from) {
				end = e.Time
				break
			}
		}
		if !end.IsZero() && !end.After(start) {
			return
		}
		out = append(out, [2]time.Time{start, end})
	}
	for _, e := range a.Audit {
		if e.Action != lineage.ActionKeyRevoked {
			continue
		}
		// A key's entry shows in the trail of every app on the key: it deactivated this
		// app only if the key was its active generation's then.
		k := entryKey(e)
		active := activeKeyAt(a, e.Time)
		if k != "" && k != active {
			continue
		}
		if k == "" {
			k = active
		}
		span(k, e.Time, e.Time.Add(AuditSlack))
	}
	for _, o := range ops {
		if o.Kind == OpObserve && o.App == a.App.ID && o.OK() && o.AppStatus == string(lineage.AppDeactivated) {
			span(activeKeyAt(a, o.Start), o.Start.Add(-AuditSlack), o.End)
		}
	}
	return out
}

// entryKey is the key an audit entry is about ("" when it names none).
func entryKey(e lineage.AuditEntry) string {
	if e.KeyARN != "" {
		return e.KeyARN
	}
	return e.Detail["keyArn"]
}

// sameKey says two keys may be the same one ("" is any key).
func sameKey(a, b string) bool { return a == "" || b == "" || a == b }

// activeKeyAt is the key of the app's active generation at t, as its audit trail tells:
// generation 1 until the first commit, then each committed generation in turn.
func activeKeyAt(a AppState, t time.Time) string {
	gen := 1
	var at time.Time
	for _, e := range a.Audit {
		if e.Action != lineage.ActionReencryptCommitted || e.Time.After(t) || e.Time.Before(at) {
			continue
		}
		if n, err := strconv.Atoi(e.Detail["generation"]); err == nil {
			gen, at = n, e.Time
		}
	}
	for _, g := range a.Generations {
		if g.Number == gen {
			return g.KeyARN
		}
	}
	return ""
}

// within says the operation ran wholly inside the span: it began after the span began and
// ended before the span ended (a reactivation landing while it ran may have let it through).
func within(o Op, span [2]time.Time) bool {
	return o.Start.After(span[0]) && (span[1].IsZero() || o.End.Before(span[1]))
}

// checkHistory checks I2, I6 and I10 against the recorded operations.
func checkHistory(c *checker, s Snapshot) {
	if len(s.History) == 0 {
		return
	}
	apps := map[string]AppState{}
	for _, a := range s.Apps {
		apps[a.App.ID] = a
	}
	byApp := map[string][]Op{}
	for _, o := range s.History {
		byApp[o.App] = append(byApp[o.App], o)
	}

	// I2: no CMK read or write of a deactivated app succeeds.
	for id, ops := range byApp {
		a, ok := apps[id]
		if !ok || a.App.KeyModel != lineage.KeyModelCMK {
			continue
		}
		spans := deactivations(a, ops)
		for _, o := range ops {
			if (o.Kind != OpRead && o.Kind != OpWrite) || !o.CMK {
				continue
			}
			for _, sp := range spans {
				if !within(o, sp) {
					continue
				}
				c.check(!o.OK(), I2, id, "%s of CMK object %q succeeded (status %d, generation %d) at %s, after the app's deactivation was applied (%s)",
					o.Kind, o.Path, o.Status, o.Generation, o.Start.Format(time.RFC3339Nano), sp[0].Format(time.RFC3339Nano))
				break
			}
		}
	}

	// I6: every read of an object returns what the last acknowledged write (or a write that
	// may have landed after it) put there; nothing acknowledged is lost.
	type objKey struct{ app, path string }
	writes := map[objKey][]Op{}
	reads := map[objKey][]Op{}
	restores := map[string][]Op{} // app → restores requested into it
	for _, o := range s.History {
		k := objKey{o.App, o.Path}
		switch o.Kind {
		case OpWrite:
			writes[k] = append(writes[k], o)
		case OpRead:
			reads[k] = append(reads[k], o)
		case OpRestore:
			if o.OK() || o.Unknown() {
				restores[o.App] = append(restores[o.App], o)
			}
		}
	}
	// restoredBefore is the latest start of a restore into app that may have landed before
	// the read ended: any content written before it may be back.
	restoredBefore := func(app string, r Op) time.Time {
		var t time.Time
		for _, x := range restores[app] {
			if x.Start.Before(r.End) && x.Start.After(t) {
				t = x.Start
			}
		}
		return t
	}
	for k, rs := range reads {
		ws := writes[k]
		for _, r := range rs {
			var last *Op
			for i := range ws {
				w := &ws[i]
				if w.OK() && w.End.Before(r.Start) && (last == nil || w.End.After(last.End)) {
					last = w
				}
			}
			if last == nil {
				continue // nothing acknowledged before the read began
			}
			restored := restoredBefore(k.app, r)
			switch {
			case r.OK():
				cands := map[string]bool{last.Digest: true}
				for _, w := range ws {
					if (w.OK() || w.Unknown()) && w.End.After(last.Start) && w.Start.Before(r.End) {
						cands[w.Digest] = true
					}
					if (w.OK() || w.Unknown()) && w.Start.Before(restored) {
						cands[w.Digest] = true // a restore may have put it back
					}
				}
				c.check(cands[r.Digest], I6, k.app, "read of %q at %s returned bytes (sha256 %.12s) that no acknowledged write left there (last acknowledged: %.12s at %s)",
					k.path, r.Start.Format(time.RFC3339Nano), r.Digest, last.Digest, last.End.Format(time.RFC3339Nano))
			case r.Status == 404 && restored.IsZero():
				c.check(false, I6, k.app, "read of %q at %s answered 404: the write acknowledged at %s is lost",
					k.path, r.Start.Format(time.RFC3339Nano), last.End.Format(time.RFC3339Nano))
			}
		}
	}
	if s.Final {
		for k, ws := range writes {
			a, ok := apps[k.app]
			if !ok || a.App.Status == lineage.AppDeactivated {
				continue // not readable while its key is unusable
			}
			var last *Op
			for i := range ws {
				if ws[i].OK() && (last == nil || ws[i].End.After(last.End)) {
					last = &ws[i]
				}
			}
			if last == nil {
				continue
			}
			readBack := false
			for _, r := range reads[k] {
				readBack = readBack || r.OK() && r.Start.After(last.End)
			}
			c.check(readBack, I6, k.app, "object %q, acknowledged at %s, was never read back", k.path, last.End.Format(time.RFC3339Nano))
		}
	}

	// I10: a call with one org's token about another org's app answers as if the app did
	// not exist (404), or fails before looking (400); anything else lets it learn or act.
	for _, o := range s.History {
		if o.Kind != OpForeign || o.Unknown() {
			continue
		}
		c.check(o.Status == 404 || o.Status == 400, I10, o.App, "org %s's %s about app %s (another org's) answered %d",
			o.Org, o.Detail, o.App, o.Status)
	}
}
