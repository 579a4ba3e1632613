// Command keynotify is the keyline Lambda function "keynotify" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("keynotify") }
