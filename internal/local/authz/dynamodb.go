package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// CtxLeadingKeys is DynamoDB's condition key of the partition key values a request touches.
const CtxLeadingKeys = "dynamodb:LeadingKeys"

// TableKeys names the partition key attribute of a table and of each of its indexes.
type TableKeys struct {
	HashKey string
	Indexes map[string]string // index name → its partition key attribute
}

// KeySchemas looks up a table's key attributes (DescribeTable), "not found" as an error.
type KeySchemas interface {
	TableKeys(ctx context.Context, table string) (TableKeys, error)
}

// ddbItem is an attribute map; only string and number partition keys matter here.
type ddbItem map[string]map[string]json.RawMessage

// ddbBody holds the fields of DynamoDB requests that name tables, keys and items.
type ddbBody struct {
	TableName                 string                        `json:"TableName"`
	IndexName                 string                        `json:"IndexName"`
	Key                       ddbItem                       `json:"Key"`
	Item                      ddbItem                       `json:"Item"`
	KeyConditionExpression    string                        `json:"KeyConditionExpression"`
	ExpressionAttributeNames  map[string]string             `json:"ExpressionAttributeNames"`
	ExpressionAttributeValues ddbItem                       `json:"ExpressionAttributeValues"`
	KeyConditions             map[string]json.RawMessage    `json:"KeyConditions"`
	RequestItems              map[string]json.RawMessage    `json:"RequestItems"`
	TransactItems             []map[string]ddbTransactEntry `json:"TransactItems"`
}

type ddbTransactEntry struct {
	TableName string  `json:"TableName"`
	Key       ddbItem `json:"Key"`
	Item      ddbItem `json:"Item"`
}

// ddbItemActions are the operations on items (their checks carry dynamodb:LeadingKeys).
var ddbItemActions = map[string]bool{"GetItem": true, "PutItem": true, "UpdateItem": true, "DeleteItem": true}

// transactActions maps a TransactWriteItems/TransactGetItems entry to its action.
var transactActions = map[string]string{"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
	"ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}

// DynamoDBExtractor returns the checks of DynamoDB requests: dynamodb:<Operation> on the
// table's (or index's) ARN with dynamodb:LeadingKeys, the partition key values of the items
// the request touches (Key or Item; a Query's key condition; every item of a batch, per
// table; every action of a transaction, each as its own action: Put → dynamodb:PutItem,
// ConditionCheck → dynamodb:ConditionCheckItem, …).
func DynamoDBExtractor(account string, schemas KeySchemas) Extractor {
	return ExtractorFunc(func(ctx context.Context, r *Request) ([]Check, error) {
		op := r.Target
		if op == "" {
			return nil, fmt.Errorf("dynamodb: no operation")
		}
		var b ddbBody
		if len(strings.TrimSpace(string(r.Body))) > 0 {
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return nil, fmt.Errorf("dynamodb %s: %w", op, err)
			}
		}
		tableARN := func(table string) string {
			if strings.HasPrefix(table, "arn:") {
				return table
			}
			return "arn:aws:dynamodb:" + r.Region + ":" + account + ":table/" + table
		}
		mk := func(action, resource string, leading []string) Check {
			c := Check{Action: "dynamodb:" + action, Resource: resource, ResourceAccount: account,
				Context: map[string]Value{CtxResourceAccount: One(account)}}
			if len(leading) > 0 {
				c.Context[CtxLeadingKeys] = Set(uniqueSorted(leading)...)
			}
			return c
		}
		hashOf := func(table, index string) (string, error) {
			tk, err := schemas.TableKeys(ctx, tableName(table))
			if err != nil {
				return "", err
			}
			if index == "" {
				return tk.HashKey, nil
			}
			h, ok := tk.Indexes[index]
			if !ok {
				return "", fmt.Errorf("dynamodb: table %s has no index %s", table, index)
			}
			return h, nil
		}
		switch {
		case ddbItemActions[op]:
			h, err := hashOf(b.TableName, "")
			if err != nil {
				return nil, err
			}
			item := b.Key
			if op == "PutItem" {
				item = b.Item
			}
			return []Check{mk(op, tableARN(b.TableName), keyValues(item, h))}, nil
		case op == "Query":
			h, err := hashOf(b.TableName, b.IndexName)
			if err != nil {
				return nil, err
			}
			res := tableARN(b.TableName)
			if b.IndexName != "" {
				res += "/index/" + b.IndexName
			}
			return []Check{mk(op, res, queryPartition(&b, h))}, nil
		case op == "Scan":
			res := tableARN(b.TableName)
			if b.IndexName != "" {
				res += "/index/" + b.IndexName
			}
			return []Check{mk(op, res, nil)}, nil
		case op == "BatchGetItem" || op == "BatchWriteItem":
			tables := make([]string, 0, len(b.RequestItems))
			for t := range b.RequestItems {
				tables = append(tables, t)
			}
			sort.Strings(tables)
			var cs []Check
			for _, t := range tables {
				h, err := hashOf(t, "")
				if err != nil {
					return nil, err
				}
				vals, err := batchKeys(op, b.RequestItems[t], h)
				if err != nil {
					return nil, err
				}
				cs = append(cs, mk(op, tableARN(t), vals))
			}
			return cs, nil
		case op == "TransactWriteItems" || op == "TransactGetItems":
			var cs []Check
			for _, entry := range b.TransactItems {
				for kind, e := range entry {
					action, ok := transactActions[kind]
					if !ok {
						return nil, fmt.Errorf("dynamodb %s: unknown action %s", op, kind)
					}
					h, err := hashOf(e.TableName, "")
					if err != nil {
						return nil, err
					}
					item := e.Key
					if kind == "Put" {
						item = e.Item
					}
					cs = append(cs, mk(action, tableARN(e.TableName), keyValues(item, h)))
				}
			}
			return cs, nil
		case op == "ListTables":
			return []Check{mk(op, "*", nil)}, nil
		}
		if b.TableName == "" {
			return []Check{mk(op, "*", nil)}, nil
		}
		return []Check{mk(op, tableARN(b.TableName), nil)}, nil
	})
}

func tableName(t string) string {
	if i := strings.LastIndex(t, ":table/"); i >= 0 {
		return t[i+len(":table/"):]
	}
	return t
}

// keyValues returns the partition key value of an item ("" attributes are left out).
func keyValues(item ddbItem, hash string) []string {
	if v := scalar(item[hash]); v != "" {
		return []string{v}
	}
	return nil
}

// scalar renders a string, number or binary attribute value as text.
func scalar(av map[string]json.RawMessage) string {
	for _, t := range []string{"S", "N", "B"} {
		if raw, ok := av[t]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return s
			}
		}
	}
	return ""
}

// batchKeys returns the partition key values of one table's part of a batch request.
func batchKeys(op string, raw json.RawMessage, hash string) ([]string, error) {
	var out []string
	if op == "BatchGetItem" {
		var g struct {
			Keys []ddbItem `json:"Keys"`
		}
		if err := json.Unmarshal(raw, &g); err != nil {
			return nil, fmt.Errorf("dynamodb %s: %w", op, err)
		}
		for _, k := range g.Keys {
			out = append(out, keyValues(k, hash)...)
		}
		return out, nil
	}
	var w []struct {
		PutRequest *struct {
			Item ddbItem `json:"Item"`
		} `json:"PutRequest"`
		DeleteRequest *struct {
			Key ddbItem `json:"Key"`
		} `json:"DeleteRequest"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("dynamodb %s: %w", op, err)
	}
	for _, e := range w {
		switch {
		case e.PutRequest != nil:
			out = append(out, keyValues(e.PutRequest.Item, hash)...)
		case e.DeleteRequest != nil:
			out = append(out, keyValues(e.DeleteRequest.Key, hash)...)
		}
	}
	return out, nil
}

// hashCondition matches `name = :value` (either way round) in a key condition expression.
var hashCondition = regexp.MustCompile(`([#A-Za-z0-9_.]+)\s*=\s*(:[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)\s*=\s*([#A-Za-z0-9_.]+)`)

// queryPartition returns the partition key value a Query asks for.
func queryPartition(b *ddbBody, hash string) []string {
	if b.KeyConditionExpression != "" {
		for _, m := range hashCondition.FindAllStringSubmatch(b.KeyConditionExpression, -1) {
			name, val := m[1], m[2]
			if name == "" {
				name, val = m[4], m[3]
			}
			if strings.HasPrefix(name, "#") {
				name = b.ExpressionAttributeNames[name]
			}
			if name == hash {
				if v := scalar(b.ExpressionAttributeValues[val]); v != "" {
					return []string{v}
				}
			}
		}
		return nil
	}
	if raw, ok := b.KeyConditions[hash]; ok {
		var kc struct {
			AttributeValueList []map[string]json.RawMessage `json:"AttributeValueList"`
		}
		if json.Unmarshal(raw, &kc) == nil && len(kc.AttributeValueList) == 1 {
			if v := scalar(kc.AttributeValueList[0]); v != "" {
				return []string{v}
			}
		}
	}
	return nil
}

func uniqueSorted(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}
