// Command keystatemigrate is the keyline Lambda function "keystatemigrate" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("keystatemigrate") }
