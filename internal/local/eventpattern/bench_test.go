package eventpattern

import (
	"fmt"
	"testing"
)

const cloudTrailEvent = `{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"AWS API Call via CloudTrail",
"source":"aws.kms","account":"111122223333","time":"2026-03-01T12:00:00Z","region":"us-east-1","resources":[],
"detail":{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:alice",
"arn":"arn:aws:sts::111122223333:assumed-role/Admin/alice","accountId":"111122223333"},
"eventTime":"2026-03-01T12:00:00Z","eventSource":"kms.amazonaws.com","eventName":"DisableKey","awsRegion":"us-east-1",
"sourceIPAddress":"203.0.113.10","userAgent":"aws-cli/2.15.0","requestParameters":{"keyId":"1234abcd-12ab-34cd-56ef-1234567890ab"},
"responseElements":null,"requestID":"a1b2c3d4","eventID":"e1f2a3b4-0000-1111-2222-333344445555","readOnly":false,
"resources":[{"accountId":"111122223333","type":"AWS::KMS::Key","ARN":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}],
"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management"}}`

// benchPatterns returns n distinct rules of the kinds deployments use.
func benchPatterns(n int) []*Pattern {
	kinds := []string{
		`{"source":["aws.kms"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventName":["DisableKey","ScheduleKeyDeletion"],"errorCode":[{"exists":false}],"requestParameters":{"keyId":[{"prefix":"%d"}]}}}`,
		`{"source":["aws.s3","app.%d"],"detail":{"eventName":[{"anything-but":["GetObject","HeadObject"]}]}}`,
		`{"detail":{"sourceIPAddress":[{"cidr":"10.%d.0.0/16"}],"userAgent":[{"wildcard":"aws-cli/*"}]}}`,
		`{"detail":{"resources":{"ARN":[{"suffix":"%d"}],"type":["AWS::KMS::Key"]}}}`,
		`{"$or":[{"detail":{"eventName":[{"equals-ignore-case":"enablekey%d"}]}},{"account":[{"numeric":[">",%d]}]}]}`,
	}
	out := make([]*Pattern, n)
	for i := range out {
		k := kinds[i%len(kinds)]
		src := fmt.Sprintf(k, i)
		if i%len(kinds) == 4 {
			src = fmt.Sprintf(k, i, i)
		}
		if i%10 == 0 { // every tenth rule is the revocation rule of one tenant's key
			src = `{"source":["aws.kms"],"detail":{"eventName":["DisableKey","ScheduleKeyDeletion"],"errorCode":[{"exists":false}],"resources":{"ARN":[{"suffix":"1234567890ab"}]}}}`
		}
		out[i] = MustCompile(src)
	}
	return out
}

// eventsPerOp is the number of events one iteration matches, so that a one-iteration run
// (make bench's -benchtime 1x) lasts tens of milliseconds, far above the timer's resolution.
const eventsPerOp = 20000

// BenchmarkPatternMatch100Rules parses a CloudTrail event once and matches it
// against 100 compiled rules, as the bus does for each published event.
func BenchmarkPatternMatch100Rules(b *testing.B) {
	rules := benchPatterns(100)
	ev := []byte(cloudTrailEvent)
	matched := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range eventsPerOp {
			e, err := ParseEvent(ev)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rules {
				if r.MatchParsed(e) {
					matched++
				}
			}
		}
	}
	b.StopTimer()
	if matched == 0 {
		b.Fatal("no rule matched the event")
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)*eventsPerOp/s, "pattern_match_events_per_s")
	}
}
