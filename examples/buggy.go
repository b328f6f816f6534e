// Command ordersum prints per-customer totals and the average order value
// of JSON order files, converting every amount to a base currency with a
// table of exchange rates.
//
// Usage: ordersum -rates rates.json orders.json [more.json ...]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
)

// Order is one entry of an order file.
type Order struct {
	Customer string `json:"customer"`
	Amount   int    `json:"amount"`
	Currency string `json:"currency"`
}

// Report sums the orders of each customer.
type Report struct {
	Totals map[string]int
	Count  int
}

func loadOrders(paths []string) ([]Order, error) {
	var orders []Order
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()

		var batch []Order
		if err := json.NewDecoder(f).Decode(&batch); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		orders = append(orders, batch...)
	}
	return orders, nil
}

func loadRates(path string) map[string]int {
	f, _ := os.Open(path)
	info, _ := f.Stat()
	buf := make([]byte, info.Size())
	if _, err := f.Read(buf); err != nil {
		log.Fatalf("reading %s: %v", path, err)
	}
	f.Close()

	rates := map[string]int{}
	if err := json.Unmarshal(buf, &rates); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
	return rates
}

func convert(orders []Order, rates map[string]int) []Order {
	converted := make([]Order, len(orders))
	var wg sync.WaitGroup
	var o Order
	for i := range orders {
		o = orders[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			converted[i] = Order{Customer: o.Customer, Amount: o.Amount * rates[o.Currency], Currency: "base"}
		}()
	}
	wg.Wait()
	return converted
}

func summarise(orders []Order) Report {
	var r Report
	for _, o := range orders {
		r.Totals[o.Customer] += o.Amount
		r.Count++
	}
	return r
}

func average(orders []Order) int {
	total := 0
	for _, o := range orders {
		total += o.Amount
	}
	return total / len(orders)
}

func main() {
	ratesPath := flag.String("rates", "rates.json", "exchange rates: currency to base units")
	flag.Parse()

	orders, err := loadOrders(flag.Args())
	if err != nil {
		log.Fatal(err)
	}
	orders = convert(orders, loadRates(*ratesPath))
	report := summarise(orders)

	customers := make([]string, 0, len(report.Totals))
	for c := range report.Totals {
		customers = append(customers, c)
	}
	sort.Strings(customers)
	for _, c := range customers {
		fmt.Printf("%-20s %10d\n", c, report.Totals[c])
	}
	fmt.Printf("%d orders, average %d\n", report.Count, average(orders))
}
