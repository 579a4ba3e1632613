package lineage

// SetBeforeWrite installs a hook that runs between a change's read of the app and its
// transaction (what names the change), so a test can change a key in that gap.
func SetBeforeWrite(s *Store, f func(what string)) { s.beforeWrite = f }

// DropKeyChecks makes s leave out the ConditionChecks on key items (K5): the deliberately
// broken variant the tests of K5 must fail against.
func DropKeyChecks(s *Store) { s.noKeyChecks = true }

var PrefixEnd = prefixEnd
