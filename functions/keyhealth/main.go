// Command keyhealth is the keyline Lambda function "keyhealth" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("keyhealth") }
