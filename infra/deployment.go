package infra

// Description returns keyline's deployment: the data plane (backup, restore, drills),
// the key plane (revocation, reactivation, health, re-encryption) and the console.
func Description() Deployment {
	var d Deployment
	for _, part := range []Deployment{dataPlane(), keyPlane(), consolePlane()} {
		d.Functions = append(d.Functions, part.Functions...)
		d.StateMachines = append(d.StateMachines, part.StateMachines...)
		d.Rules = append(d.Rules, part.Rules...)
		d.Schedules = append(d.Schedules, part.Schedules...)
	}
	return d
}
