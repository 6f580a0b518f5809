"""Write the small embedded demo dataset for batchrank.

The demo lets anyone run a reranking job end to end without downloading a
benchmark: 8 hand-written English queries, each with 12 candidate passages in
the style of MS MARCO web passages. For every query 2-3 passages truly answer
it (graded 2 = fully, 1 = partially); the rest are plausible distractors that
share topic words or are off topic. The candidate ("first-stage") order is a
fixed-seed shuffle that keeps every relevant passage out of the top 3, so a
good reranker visibly improves the ranking.

Outputs, written to ``--out`` (default: ``jobs/data/demo`` under the repo root):

* ``candidates.parquet`` -- one row per (query, candidate), grouped by query in
  first-stage order: query_id, query, doc_id, document, first_stage_rank.
* ``qrels.txt`` -- TREC qrels (``Q01 0 D0103 2``) for the relevant pairs only.
* ``README.md`` -- what the data is, its licence, how it was generated.

Ids: queries are ``Q01``..``Q08``; passages are ``DqqPP`` where ``qq`` is the
query number and ``PP`` the passage's position in the inline data below (not
its first-stage rank).

Usage: python scripts/make_demo_data.py [--out DIR]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "jobs" / "data" / "demo"

SEED = 20240611
PASSAGES_PER_QUERY = 12
MIN_WORDS, MAX_WORDS = 20, 70
# Relevant passages are placed at 1-based first-stage ranks in this range.
FIRST_RELEVANT_RANK = 4

SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("document", pa.string(), nullable=False),
        pa.field("first_stage_rank", pa.int32(), nullable=False),
    ]
)

# Each query: (query text, [(grade, passage), ...]). Grade 2 = answers the
# query, 1 = partially answers it, 0 = distractor (not judged in qrels).
DATA: list[tuple[str, list[tuple[int, str]]]] = [
    (
        "boiling point of water",
        [
            (0, "Water freezes at 0 degrees Celsius (32 degrees Fahrenheit) at standard pressure. Adding salt lowers the freezing point, which is why roads are salted in winter to keep ice from forming on the pavement."),
            (0, "The boiling point of ethanol is 78.37 degrees Celsius, significantly lower than that of many other common solvents. This property is used in distillation to separate alcohol from fermented mixtures."),
            (2, "Pure water boils at 100 degrees Celsius (212 degrees Fahrenheit) at standard sea-level atmospheric pressure of one atmosphere. At this temperature the vapor pressure of the liquid equals the pressure of the surrounding air, so vapor bubbles form throughout the liquid."),
            (0, "Boiling water for one minute is the surest way to kill disease-causing organisms, including viruses, bacteria and parasites. At elevations above 6,500 feet, health authorities recommend boiling water for three minutes instead."),
            (0, "Water covers about 71 percent of the Earth's surface, and the oceans hold about 96.5 percent of all Earth's water. Water also exists in the air as vapor and in the ground as soil moisture."),
            (0, "An electric kettle typically brings one liter of water to a boil in three to four minutes, depending on its wattage. Models rated at 3,000 watts heat noticeably faster than 1,500-watt versions."),
            (1, "The boiling point of water decreases by roughly 1 degree Celsius for every 300 meters of elevation gain, because air pressure falls with altitude. This is why pasta and eggs take longer to cook on high mountains."),
            (0, "The melting point of a substance is the temperature at which it changes state from solid to liquid. At the melting point, the solid and liquid phases exist in equilibrium with each other."),
            (0, "Point Pleasant Beach is a borough in Ocean County, New Jersey, known for its mile-long boardwalk, its aquarium and busy summer tourism along the Jersey Shore."),
            (2, "At sea level, water boils at 212 degrees Fahrenheit (100 degrees Celsius). At higher altitudes the boiling point is lower because air pressure is lower; in Denver, about 5,280 feet above sea level, water boils at roughly 202 degrees Fahrenheit."),
            (0, "Pressure cookers raise the internal pressure to about 15 psi above atmospheric pressure, letting food cook at temperatures near 121 degrees Celsius and cutting cooking times by up to 70 percent."),
            (0, "Heat capacity describes how much energy is needed to raise the temperature of a substance. Water has a high specific heat of about 4.18 joules per gram per degree Celsius, which helps moderate coastal climates."),
        ],
    ),
    (
        "how do vaccines work",
        [
            (0, "The first vaccine was developed by Edward Jenner in 1796, who used material from cowpox sores to protect people against smallpox. The word vaccine comes from the Latin vacca, meaning cow."),
            (0, "Common side effects of vaccines include soreness at the injection site, a mild fever, fatigue and headache. These reactions are a normal sign of the body responding and usually go away within one or two days."),
            (0, "The recommended immunization schedule lists which vaccines children should receive from birth through 18 years of age, including doses of hepatitis B, DTaP, MMR and varicella vaccines."),
            (1, "mRNA vaccines give your cells instructions for making a harmless piece of the spike protein found on the surface of the virus. The immune system recognizes this protein as foreign and begins building an immune response against it."),
            (0, "Vaccine storage requires strict temperature control. Most routine vaccines must be refrigerated between 2 and 8 degrees Celsius, while some, such as the varicella vaccine, must be kept frozen until use."),
            (0, "Antibiotics work by killing bacteria or stopping them from multiplying. They are not effective against viral infections such as the common cold or the flu, and overuse contributes to antibiotic resistance."),
            (2, "Vaccines work by training the immune system to recognize a germ without causing the disease. They contain weakened or inactivated pathogens, or pieces of them such as proteins, which prompt the body to produce antibodies and memory cells."),
            (0, "Herd immunity occurs when a large share of a community becomes immune to a disease, making its spread from person to person unlikely. The threshold varies by disease and is around 95 percent for measles."),
            (0, "How much does a flu shot cost without insurance? At most retail pharmacies, the price of a standard seasonal flu vaccine ranges from about 40 to 70 dollars, while high-dose versions cost more."),
            (0, "Vacuum cleaners work by using an electric motor to spin a fan, creating a pressure difference that pulls in air along with dust and debris, which are then trapped in a bag or canister."),
            (2, "When a vaccinated person is later exposed to the real virus or bacterium, memory B and T cells created after vaccination recognize it and mount a fast, strong immune response, often stopping the infection before any symptoms develop."),
            (0, "The Vaccine Adverse Event Reporting System (VAERS) is a national early warning system, co-managed by the CDC and FDA, that collects reports to detect possible safety problems with licensed vaccines."),
        ],
    ),
    (
        "how to sort a list in python",
        [
            (0, "A Python list is an ordered, mutable collection created with square brackets, such as fruits = ['apple', 'banana']. You can add items with append() and remove them with remove() or pop()."),
            (0, "To reverse a list in Python, call list.reverse() to reverse it in place, or use slicing with my_list[::-1] to create a reversed copy without modifying the original list."),
            (0, "Dictionaries in Python store key-value pairs. Since Python 3.7, dictionaries preserve insertion order, and you can loop over their keys, values or items with the corresponding methods."),
            (2, "In Python, you can sort a list in place with the list.sort() method, for example numbers.sort(). To get a new sorted list and leave the original unchanged, use the built-in sorted() function: sorted_numbers = sorted(numbers)."),
            (0, "In Excel, select a column of data, then open the Data tab and click Sort A to Z or Sort Z to A. For sorting on several columns at once, use the Custom Sort dialog box."),
            (0, "Ball pythons are among the most popular pet snakes. They typically grow 3 to 5 feet long, live 20 to 30 years in captivity and eat appropriately sized rodents every one to two weeks."),
            (1, "Python sorts lists with Timsort, a hybrid of merge sort and insertion sort that runs in O(n log n) time in the worst case and performs especially well on data that is already partially ordered."),
            (0, "To remove duplicates from a Python list while preserving order, you can use list(dict.fromkeys(items)). Converting the list to a set also removes duplicates, but it does not keep the original order."),
            (0, "Python list comprehensions provide a concise way to create lists, for example squares = [x * x for x in range(10)]. They can also include an if clause to filter elements."),
            (2, "Both list.sort() and sorted() accept a key function and a reverse flag. For example, words.sort(key=str.lower, reverse=True) sorts strings case-insensitively in descending order. Python's sort is stable, so equal elements keep their original order."),
            (0, "The bubble sort algorithm repeatedly steps through a list, compares adjacent elements and swaps them if they are in the wrong order. Its average time complexity is quadratic, so it is rarely used in practice."),
            (0, "In Java, Collections.sort() sorts a List in ascending natural order and Arrays.sort() sorts arrays. A custom ordering can be supplied by passing a Comparator as the second argument."),
        ],
    ),
    (
        "causes of the french revolution",
        [
            (0, "The storming of the Bastille on 14 July 1789 is celebrated as France's national day. The medieval fortress held only seven prisoners at the time, but it symbolized royal tyranny to the people of Paris."),
            (2, "Social inequality under the Old Regime was a major cause of the revolution. The clergy and nobility enjoyed privileges and tax exemptions, while commoners, about 97 percent of the population, paid most taxes and had little political power."),
            (0, "The Reign of Terror, from 1793 to 1794, saw thousands of people executed by guillotine as the Committee of Public Safety, led by Maximilien Robespierre, sought to eliminate enemies of the revolution."),
            (0, "Napoleon Bonaparte rose to power in the coup of 18 Brumaire in 1799 and crowned himself Emperor of the French in 1804 in a lavish ceremony at Notre-Dame Cathedral in Paris."),
            (0, "The Industrial Revolution began in Britain in the late 18th century, driven by coal, iron and innovations such as the steam engine and mechanized textile production in large factories."),
            (0, "French is a Romance language spoken by about 300 million people worldwide. It is an official language in 29 countries, including France, Canada, Belgium, Switzerland and many nations in Africa."),
            (2, "The French Revolution of 1789 had several causes: a severe financial crisis caused by war debts and royal spending, an unfair tax system that burdened the Third Estate, poor harvests that raised bread prices, and Enlightenment ideas challenging absolute monarchy."),
            (0, "Marie Antoinette, queen of France, was executed on 16 October 1793. The phrase 'Let them eat cake' is widely attributed to her, although historians have found no evidence that she ever said it."),
            (0, "The Declaration of the Rights of Man and of the Citizen, adopted in August 1789, proclaimed that men are born free and equal in rights and that sovereignty resides in the nation."),
            (1, "France's involvement in the American War of Independence cost about 1.3 billion livres, pushing the monarchy toward bankruptcy and eventually forcing Louis XVI to summon the Estates-General in 1789."),
            (0, "Causes of the American Revolution included taxation without representation, the Stamp Act of 1765, the Townshend Acts and growing colonial resistance to British rule in the thirteen colonies."),
            (0, "The French Revolution is a popular topic for history essays. Our study guide includes a timeline, key vocabulary, practice questions and a printable map of France in 1789 for classroom use."),
        ],
    ),
    (
        "what is photosynthesis",
        [
            (0, "Cellular respiration is the process cells use to break down glucose and release energy in the form of ATP. It consumes oxygen and produces carbon dioxide and water as waste products."),
            (0, "Photography is the art of capturing light with a camera, using either film or a digital sensor. The exposure of an image depends on the aperture, the shutter speed and the ISO setting."),
            (1, "The overall equation for photosynthesis is 6CO2 + 6H2O + light energy -> C6H12O6 + 6O2. In words, six molecules of carbon dioxide and six of water produce one glucose molecule and six molecules of oxygen."),
            (0, "Chlorophyll supplements, often sold as liquid chlorophyllin, are marketed for deodorizing the body and improving skin health, although scientific evidence for most of these claims remains limited."),
            (0, "Plants need 17 essential nutrients to grow. Nitrogen, phosphorus and potassium are the primary macronutrients and are the main components of most garden fertilizers sold in stores."),
            (0, "Leaves change color in autumn because trees stop producing chlorophyll as the days shorten, revealing the yellow and orange carotenoid pigments that were present in the leaves all along."),
            (0, "The Amazon rainforest covers about 5.5 million square kilometers across nine countries and is home to roughly 10 percent of all known species on Earth."),
            (2, "Photosynthesis is the process by which green plants, algae and some bacteria use sunlight to convert carbon dioxide and water into glucose and oxygen. It takes place mainly in the chloroplasts of leaf cells, where chlorophyll absorbs light energy."),
            (0, "Some bacteria living near deep-sea hydrothermal vents use chemosynthesis, obtaining energy from chemicals such as hydrogen sulfide rather than from sunlight, and form the base of unusual food webs."),
            (0, "Solar panels convert sunlight into electricity using photovoltaic cells made of semiconductor materials such as silicon. Typical residential panels have an efficiency of 18 to 22 percent."),
            (2, "Photosynthesis is how plants make their own food. Using light energy captured by chlorophyll, they turn water and carbon dioxide into sugar, releasing oxygen as a by-product. Nearly all life on Earth depends on this process."),
            (0, "This photosynthesis worksheet for grade 5 includes a labeled leaf diagram, vocabulary matching and a short quiz. Download the printable PDF and the answer key for free."),
        ],
    ),
    (
        "how tall is the eiffel tower",
        [
            (0, "Eiffel Tower tickets can be bought online or on site. The adult price to the summit by lift is about 29 euros, with reduced rates for young people aged 12 to 24 and for children."),
            (0, "The Eiffel Tower was designed by the engineering company of Gustave Eiffel for the 1889 World's Fair, which marked the centennial of the French Revolution. Many artists criticized it at first."),
            (0, "The Eiffel Tower weighs about 10,100 tonnes in total, and its metal structure alone weighs 7,300 tonnes. It is repainted every seven years using about 60 tonnes of paint."),
            (0, "The Burj Khalifa in Dubai is the tallest building in the world at 828 meters (2,717 feet). It has more than 160 stories and was officially opened in January 2010."),
            (2, "Upon its completion in 1889, the Eiffel Tower stood 312 meters tall and was the tallest man-made structure in the world until the Chrysler Building surpassed it in 1930. A new antenna added in 2022 brought its height to 330 meters."),
            (0, "There are 1,665 steps from the ground to the top of the Eiffel Tower, but visitors may only climb the 674 steps to the second floor; the summit is reached by elevator."),
            (0, "Paris is the capital of France, with a population of about 2.1 million in the city proper. It is known worldwide for the Louvre, Notre-Dame Cathedral and its cafe culture."),
            (1, "The top observation deck of the Eiffel Tower is 276 meters above the ground, making it the highest observation deck open to the public in the European Union."),
            (0, "The Tokyo Tower, completed in 1958, was inspired by the Eiffel Tower and is painted white and international orange to comply with air safety regulations."),
            (0, "The average height of an adult man in France is about 175 centimeters, while the average for adult women is around 162 centimeters, according to recent national health surveys."),
            (2, "The Eiffel Tower is 330 meters (1,083 feet) tall including its antennas, making it the tallest structure in Paris. Without the antennas, the iron tower itself measures about 300 meters."),
            (0, "Eiffel Tower replicas stand in several cities, including a half-scale version at the Paris Las Vegas hotel and casino and a 108-meter copy in Hangzhou, China."),
        ],
    ),
    (
        "how to make sourdough bread",
        [
            (0, "A sourdough starter is a mixture of flour and water that captures wild yeast and lactic acid bacteria. It usually takes five to seven days of daily feedings before it becomes active and bubbly."),
            (0, "Is sourdough bread healthy? Sourdough may have a lower glycemic index than regular white bread, and its long fermentation can make some minerals easier for the body to absorb."),
            (0, "Banana bread is a quick bread made with ripe bananas, flour, sugar, eggs and baking soda. Bake it in a greased loaf pan at 175 degrees Celsius for about 60 minutes."),
            (0, "San Francisco sourdough became famous during the California Gold Rush, when miners carried starters with them. Some of the city's bakeries, such as Boudin, date back to 1849."),
            (1, "For a crisp crust and good oven spring, bake sourdough in a covered Dutch oven for the first part of the bake. The trapped steam keeps the surface soft so the loaf can expand before the crust sets."),
            (0, "Best bread machines of the year: we tested 12 models for loaf quality, crust settings and ease of cleaning. Our top pick bakes a 2-pound loaf and has a gluten-free cycle."),
            (0, "Yeast is a single-celled fungus. Baker's yeast, Saccharomyces cerevisiae, ferments sugars into carbon dioxide and alcohol, and the gas it releases is what makes dough rise."),
            (2, "To make sourdough bread, mix 500 g flour, 350 g water and 100 g active starter, rest 30 minutes, then add 10 g salt. Do stretch-and-folds over a few hours, shape the dough, proof it overnight in the fridge and bake in a hot Dutch oven."),
            (0, "How to store sourdough bread: keep it cut side down on a wooden board for up to two days, or slice it and freeze it in an airtight bag for up to three months."),
            (0, "Sourdough Cafe on Main Street serves breakfast and lunch daily from 7 am to 3 pm. Try our avocado toast on house-baked bread or the homemade soup of the day."),
            (2, "Basic sourdough method: feed your starter until bubbly, combine it with flour, water and salt, let the dough bulk ferment until it grows by about half, shape a tight loaf, proof it, score the top and bake covered for 20 minutes, then uncovered for 20 more."),
            (0, "Gluten is a group of proteins in wheat that gives dough its elasticity. Kneading develops the gluten network, which traps gas and helps bread hold its shape while baking."),
        ],
    ),
    (
        "symptoms of dehydration",
        [
            (0, "Oral rehydration solutions contain a precise balance of water, glucose and electrolytes such as sodium and potassium, and are used to treat dehydration caused by diarrhea and vomiting."),
            (0, "How much water should you drink a day? The U.S. National Academies suggest about 3.7 liters of total fluids a day for men and 2.7 liters for women, including water from food."),
            (0, "Dehydrated foods, such as dried fruit and jerky, have most of their moisture removed to prevent spoilage. A food dehydrator uses low heat and steady airflow over several hours."),
            (0, "Symptoms of diabetes include increased thirst, frequent urination, extreme hunger, unexplained weight loss, fatigue and blurred vision. See a doctor if you notice several of these signs."),
            (2, "Common symptoms of dehydration in adults include extreme thirst, less frequent urination, dark-colored urine, fatigue, dizziness and confusion. Mild dehydration may also cause a headache and a dry mouth."),
            (0, "Heat stroke occurs when the body's core temperature rises to 40 degrees Celsius or higher. It requires emergency treatment and, if untreated, can damage the brain, heart and kidneys."),
            (0, "Electrolytes are minerals such as sodium, potassium, calcium and magnesium that carry an electric charge. They help regulate nerve and muscle function and balance the fluids in the body."),
            (1, "Severe dehydration is a medical emergency. Warning signs include a rapid heartbeat, rapid breathing, very low blood pressure, lack of sweating and fainting; seek medical care immediately."),
            (0, "Dry skin, or xerosis, is common in winter when humidity is low. Applying a moisturizer after bathing and running a humidifier indoors can help relieve itching and flaking."),
            (0, "Coffee and tea count toward your daily fluid intake. Although caffeine has a mild diuretic effect, moderate amounts do not cause dehydration in people who drink them regularly."),
            (2, "Signs of dehydration in infants and young children include a dry mouth and tongue, no tears when crying, no wet diapers for three hours, sunken eyes or cheeks, a sunken soft spot on the skull, and listlessness or irritability."),
            (0, "Symptoms of the common cold include a runny or stuffy nose, sore throat, cough, congestion and sneezing, usually appearing one to three days after exposure to a cold virus."),
        ],
    ),
]


@dataclass(frozen=True)
class Candidate:
    """One (query, passage) row in first-stage order."""

    query_id: str
    query: str
    doc_id: str
    document: str
    grade: int
    first_stage_rank: int


def validate(data: list[tuple[str, list[tuple[int, str]]]]) -> None:
    """Fail loudly if the inline data breaks the dataset's stated shape."""
    seen: set[str] = set()
    for qi, (query, passages) in enumerate(data, start=1):
        if len(passages) != PASSAGES_PER_QUERY:
            raise ValueError(f"Q{qi:02d}: {len(passages)} passages, want {PASSAGES_PER_QUERY}")
        n_relevant = sum(1 for grade, _ in passages if grade > 0)
        if not 2 <= n_relevant <= 3:
            raise ValueError(f"Q{qi:02d} ({query!r}): {n_relevant} relevant passages, want 2-3")
        for pi, (grade, text) in enumerate(passages, start=1):
            n_words = len(text.split())
            if grade not in (0, 1, 2):
                raise ValueError(f"D{qi:02d}{pi:02d}: grade {grade} not in 0/1/2")
            if not MIN_WORDS <= n_words <= MAX_WORDS:
                raise ValueError(f"D{qi:02d}{pi:02d}: {n_words} words, want {MIN_WORDS}-{MAX_WORDS}")
            if text in seen:
                raise ValueError(f"D{qi:02d}{pi:02d}: duplicate passage text")
            seen.add(text)


def first_stage_order(passages: list[tuple[int, str]], rng: random.Random) -> list[int]:
    """Return passage indices in a shuffled order with no relevant passage in the top 3."""
    relevant = [i for i, (grade, _) in enumerate(passages) if grade > 0]
    distractors = [i for i, (grade, _) in enumerate(passages) if grade == 0]
    rng.shuffle(relevant)
    rng.shuffle(distractors)
    slots = sorted(rng.sample(range(FIRST_RELEVANT_RANK - 1, len(passages)), len(relevant)))
    order: list[int] = []
    rel_iter, dis_iter = iter(relevant), iter(distractors)
    for pos in range(len(passages)):
        order.append(next(rel_iter) if pos in slots else next(dis_iter))
    return order


def build_candidates(data: list[tuple[str, list[tuple[int, str]]]], seed: int) -> list[Candidate]:
    """Expand the inline data into candidate rows, grouped by query in first-stage order."""
    rows: list[Candidate] = []
    for qi, (query, passages) in enumerate(data, start=1):
        rng = random.Random(seed + qi)  # per-query seed: editing one query leaves the others' order alone
        for rank, pi in enumerate(first_stage_order(passages, rng), start=1):
            grade, text = passages[pi]
            rows.append(Candidate(f"Q{qi:02d}", query, f"D{qi:02d}{pi + 1:02d}", text, grade, rank))
    return rows


def write_parquet(rows: list[Candidate], path: Path) -> None:
    """Write candidate rows to Parquet with the fixed SCHEMA."""
    table = pa.Table.from_pydict(
        {
            "query_id": [r.query_id for r in rows],
            "query": [r.query for r in rows],
            "doc_id": [r.doc_id for r in rows],
            "document": [r.document for r in rows],
            "first_stage_rank": [r.first_stage_rank for r in rows],
        },
        schema=SCHEMA,
    )
    pq.write_table(table, path)


def write_qrels(rows: list[Candidate], path: Path) -> None:
    """Write TREC qrels for the relevant pairs, sorted by query id then doc id."""
    judged = sorted((r.query_id, r.doc_id, r.grade) for r in rows if r.grade > 0)
    path.write_text("".join(f"{q} 0 {d} {g}\n" for q, d, g in judged), encoding="utf-8")


def write_readme(path: Path) -> None:
    """Write the dataset's README."""
    n_queries = len(DATA)
    path.write_text(
        f"""# batchrank demo data

A tiny hand-written English reranking dataset: {n_queries} queries x {PASSAGES_PER_QUERY} candidate passages, written like MS MARCO web passages.
Each query has 2-3 relevant passages (graded 2 = answers, 1 = partially answers); the rest are plausible distractors.
`candidates.parquet` holds the candidates in a fixed-seed "first-stage" order with no relevant passage in the top 3, so a good reranker visibly helps.
`qrels.txt` holds TREC qrels (`query_id 0 doc_id grade`) for the relevant pairs only; unlisted pairs are non-relevant.
Licence: written for this project, released under CC0 1.0 (public domain dedication).
Generated by `python scripts/make_demo_data.py` (the texts live inline in that script); do not edit these files by hand.
""",
        encoding="utf-8",
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    validate(DATA)
    rows = build_candidates(DATA, SEED)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(rows, out / "candidates.parquet")
    write_qrels(rows, out / "qrels.txt")
    write_readme(out / "README.md")
    print(f"wrote {len(rows)} candidates for {len(DATA)} queries to {out}")


if __name__ == "__main__":
    main()
